print("syncline-server")
