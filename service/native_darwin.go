package service

func native() (manager, error) { return launchd{}, nil }
